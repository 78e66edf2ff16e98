"""The project's root error. It lives in the innermost package so that every layer can
subclass it; each package keeps its own errors in its own ``errors.py``:

    FraudscoreError                      features/errors.py
    ├── StateVersionError                features/errors.py card state of an unreadable version
    ├── TopicError                       sinks/errors.py   a topic is missing or mis-shaped
    ├── StateError                       sinks/errors.py   local state cannot be used
    ├── DatasetError                     sinks/errors.py   a dataset directory cannot be read
    ├── AuditError                       sinks/errors.py   the audit table cannot be used as asked
    │   └── AuditQueryError              sinks/errors.py   a question it cannot answer as asked
    │       └── AuditSnapshotError       sinks/errors.py   the as-of snapshot or tag is not there
    ├── BrokerError                      app/errors.py     local Kafka cannot be fetched/started
    │   └── MissingToolError             app/errors.py     java or mvn is not installed
    ├── SavepointError                   app/errors.py     a savepoint cannot be taken or imported
    ├── ReproductionError                app/errors.py     a decision's model or policy is not here
    ├── AuthorizerError                  app/errors.py     a bad transaction to authorize
    ├── HealthError                      app/errors.py     a health probe failed (container checks)
    ├── SettingsError                    app/errors.py     a secret file cannot be read, or clashes
    ├── ModelError                       models/errors.py  a model cannot be trained or loaded
    │   ├── TrainingError                models/errors.py  too little data, or no fraud labelled
    │   └── ArtefactError                models/errors.py  artefact damaged, unsafe or mismatched
    ├── DatabaseError                    app/db/errors.py  registry database down or not migrated
    ├── RegistryError                    app/db/errors.py  a model or policy change is not allowed
    │   └── UnknownVersionError          app/db/errors.py  no model or policy of that version
    ├── ApiError                         app/api/errors.py a request cannot be served (4xx, 503)
    └── ...

Every error says what went wrong and what to do about it. The CLI turns them into a message
and exit code 1 in one place (``app/cli/console.py``).
"""

from __future__ import annotations


class FraudscoreError(Exception):
    """Root of every error this service raises on purpose."""


class StateVersionError(FraudscoreError, ValueError):
    """Card state has a version or layout this build cannot read or migrate."""
