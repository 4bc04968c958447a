"""The foundation every layer stands on: settings, database, Redis connections, time, telemetry. Imports none of
wechat/, scrm/, handlers/, tasks/ or the app layer."""
