"""`python -m worker ...`"""

import signal

from worker import signals

# Catch SIGTERM/SIGINT from the very start: a stop asked for while the worker is still
# importing and starting up is honoured once it is ready (a clean exit 0, no job lost).
signal.signal(signal.SIGTERM, signals.remember)
signal.signal(signal.SIGINT, signals.remember)

from worker.cli import main  # noqa: E402

raise SystemExit(main())
