"""``python -m insitu``: the ``insitu`` command line (:func:`insitu.cli.main`)."""

from insitu.cli import main

raise SystemExit(main())
