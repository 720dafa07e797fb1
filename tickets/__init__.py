"""Work orders (工单): lifecycle, dispatch, deadlines, portals and APIs.

The lifecycle and deadline rules live in modules without I/O. Imports recordings and hotline infra.
"""
