"""Party server: config, TLS, job execution, datasets and policy. Imports ``protocols``
through the registry; nothing below it does."""
