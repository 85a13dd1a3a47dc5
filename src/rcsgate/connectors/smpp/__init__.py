"""SMPP 3.4 SMS connector: our own PDU codec (pdu), an asyncio ESME session over one bind
(session), text encoding and segmentation, delivery-receipt parsing, the connector with its
settings, and a fake SMSC for tests.
"""
