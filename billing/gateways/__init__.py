"""Payment gateways: pay links out, verified events in (an inbox), payments recorded once.

``model`` holds what every gateway adapter returns; ``stripe_gateway`` is the Stripe adapter
(the official ``stripe`` package, its base address configurable so tests point it at a local
stand-in); ``inbox`` stores each verified event once by its id, then processes it.
"""
