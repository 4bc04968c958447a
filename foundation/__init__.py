"""The foundation every layer stands on: settings, database, SQL helpers, Redis connections, time, services,
telemetry.

It imports nothing of wechat/, scrm/, handlers/, tasks/ or welead/ (tests/test_layers.py holds it to that).
"""
