"""In-process queue sentinels shared by clients and the source partitions that drain them."""

import uuid

END = object()  # a client will put nothing more on its queue

# Identifies this process's records in a journal (a client's END marker only counts for its own run).
RUN_ID = uuid.uuid4().hex
