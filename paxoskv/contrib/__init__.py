"""Web-framework session backends: the classic user's sessions, kept in a paxos-kv cluster.

A cluster of web servers behind a load balancer shares each user's session this way: the
browser holds only a random session id, and whichever server a request reaches reads the
session from the cluster (linearizably by default, so a write one server made is seen by the
next request anywhere). Each backend imports its framework only when it is imported itself:

- :mod:`paxoskv.contrib.flask_sessions`: a Flask ``SessionInterface`` over a blocking handle;
- :mod:`paxoskv.contrib.aiohttp_sessions`: an ``aiohttp_session`` storage over a ``Node`` or a
  thin client;
- :mod:`paxoskv.contrib.starlette_sessions`: an ASGI middleware for Starlette (and FastAPI)
  over a ``Node`` or a thin client.

What they share (ids, keys, expiry by lease) is in :mod:`paxoskv.contrib.sessions`.
"""
