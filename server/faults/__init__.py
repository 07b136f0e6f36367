"""Fault injection for offline client testing: a route answers as its real service does under failure.

Off unless ``testing.faults_enabled``. The plan (``testing.faults``, a list of ``FaultRule``) and a per-request header
(``testing.fault_header``, ``X-Fault`` by default) choose a ``Fault`` for a generation request when it is admitted:

- ``plan.py``: the schema (``Fault``, ``FaultRule``), the header's syntax and the plan's matching and counting;
- ``inject.py``: one request's fault in the core: a typed error before the first byte, a paced or hanging engine
  stream, an in-stream error or a cut connection after K deltas.

The core raises typed errors (``server/errors.py``) and ends streams with ``Finish``es as it does for real failures,
so each wire API renders an injected fault exactly as it renders the real one: its status, its envelope, its
Retry-After, its stream error event. An ``overloaded`` fault is a 503 in the core; Anthropic's Messages route sends
it as its 529 ``overloaded_error``, as it does every 503. The HTTP side (``server/http/faults.py``) binds each
request's wire API, path and header, and closes the connection for a ``cut``.
"""
