"""Hooks for ./scripts/schemathesis.

An `Idempotency-Key` binds a key to one request: a client sends a fresh key
with every new request and the same key only when it retries that request.
Schemathesis draws keys from the schema and reuses them across different
bodies, which Herald rightly answers 422; give each generated request a key
of its own, as a client does.
"""
import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"schemathesis-{uuid.uuid4()}"
