"""TokenMonster backend (binary .vocab and .yaml). Filled by the TokenMonster work."""


def load_vocab(path):
    from audit.errors import InputError

    raise InputError(path, "TokenMonster support is not built yet")
