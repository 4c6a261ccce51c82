"""NATS plumbing shared by the nats input and the nats consumer: options and the client."""
