"""The multi-camera monitor on a Ray cluster: one engine per node, placed and supervised by the driver.

Only ``monitor --ray`` imports this package; ``placement`` and ``budget`` are pure (no Ray, no
threads) so they are tested alone, ``node`` runs inside each node's actor and ``driver`` on the
machine that started the command.
"""
