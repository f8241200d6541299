"""The paperkb command line: a thin typer layer over kb and repro."""

import gc

# A command is a short process that allocates many small containers (module objects while
# importing, stat tuples, decoded notes) and few reference cycles: at the default threshold
# (700 allocations) the cyclic collector re-scans them dozens of times, ~10% of a read
# command's time. Collecting every 50,000 allocations still bounds what cycles can hold.
gc.set_threshold(50_000, 10, 10)
