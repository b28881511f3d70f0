"""Test double of SDNext's ``modules`` package (tests only, never shipped).

Put ``tests/sdnext`` on ``sys.path`` to import it as ``modules``; ``tests/sdnext/__init__.py``
does that and imitates SDNext's startup around it. Each module imitates the behaviour of its
namesake in SDNext (vladmandic/sdnext) that an extension can observe, quirks included;
tests/test_sdnext_double.py pins those behaviours.
"""
