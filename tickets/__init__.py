"""Work orders (工单): lifecycle, dispatch, deadlines, portals and APIs.

The rules live in modules without I/O: `lifecycle` (transitions, 主办/协办), `deadlines` (时限 on the
Chinese calendar), `matching` (category codes, catalog ranking), `privacy` (masking), `labels`.
SQL, files and HTTP sit beside them. Imports recordings and hotline infra only.
"""
