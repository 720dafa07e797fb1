"""Work orders (工单): lifecycle, dispatch, deadlines, portals and APIs.

The rules live in modules without I/O: `lifecycle` (transitions, 主办/协办), `deadlines` (时限 on the
Chinese calendar), `matching` (category codes, catalog ranking), `privacy` (masking), `labels`,
`antiabuse` (the public forms' signed stamp). SQL, files and HTTP sit beside them: the outcome
side is `followups` → `notify` (outbox rows) → `delivery` (webhook, SMTP), `supervision` (催办,
督办), `revisit` (回访, ratings), `public` (what citizens see) with `portal` and `open311`.
Imports recordings and hotline infra only.
"""
