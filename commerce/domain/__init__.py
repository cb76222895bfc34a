"""The domain: value objects, events (past tense), errors with stable codes, and the payment
port (payments.py) that checkout and the gateways share."""
