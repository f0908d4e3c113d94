"""The `tomarena` sub-commands, one module per layer they drive (arena, training, analysis); each adds its
sub-parsers through `add_commands(subparsers)`."""
