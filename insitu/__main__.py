from insitu.cli import main

raise SystemExit(main())
