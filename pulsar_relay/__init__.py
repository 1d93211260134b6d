"""The ``pulsar-relay`` command: runs any service, or all of them in one process."""
