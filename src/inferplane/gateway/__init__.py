"""The front door: rules pick a pool, a balancer picks a replica, the proxy forwards."""
