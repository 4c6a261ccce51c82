"""A run: the router, the consumers' queues, delivery threads and the pipeline that ties them."""
