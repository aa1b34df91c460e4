def test_runs_on_micropython():
    import sys
    assert sys.implementation.name == "micropython"
