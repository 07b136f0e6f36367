"""The offline testing kit: this server on a loopback port with a scripted engine (a transcript, or a recording
made with ``serve --record``), for client test suites. ``pytest_plugin`` gives pytest a fixture for it."""
