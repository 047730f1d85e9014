"""The appliance-aggregator sync link: wire protocol (sans-I/O) and CurveZMQ keys."""
