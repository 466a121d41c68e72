"""The venue boundary: everything that talks to a real exchange through ccxt.

``gateway`` is the one door the engine uses (time-bounded calls, answers checked before they
are believed); ``errors`` says what an exception means (rejected, or outcome unknown);
``reports`` reads ccxt order dicts; ``ccxt_ids`` / ``ccxt_lookup`` hold each venue's client-id
rules and how an order is found by one; ``ccxt_secrets`` keeps credentials out of logs;
``prices`` keeps recent prices for minimum-value checks; ``proxy`` wraps an exchange's order
calls (recording, crash tests). The paper exchange is a venue too, in ``pairexec.fsm.paper``.
"""
