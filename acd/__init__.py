"""The automatic call distributor: seats, queues, routing, statistics and staffing.

Rules (routing, seat states, Erlang C) live in modules without I/O; the Redis store and SQL
adapters sit beside them. Imports only hotline infra.
"""
