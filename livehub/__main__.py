from livehub.cli import main

raise SystemExit(main())
