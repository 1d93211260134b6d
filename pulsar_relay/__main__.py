from pulsar_relay.cli import main

raise SystemExit(main())
