"""Real servers and their adapters' shared parts: the embedded Redis and Redis error mapping."""
