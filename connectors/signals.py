"""In-process queue sentinels shared by clients and the source partitions that drain them."""

END = object()  # a client will put nothing more on its queue
