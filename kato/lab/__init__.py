"""The workbench: concurrent experiments on KATO sessions, judged from their history.

A *scenario* turns an experiment's parameters and a seeded random source into operations; the
*runner* (the only part that owns tasks and clocks) plays them through N concurrent *clients*
against a *target* (the engine in-process, or a real ``kato serve`` it starts), recording every
operation's invocation and completion in a *history*; *faults* (the nemesis) are operations of
the environment and go into the same history; *checkers* judge the history — read-your-writes,
lost updates, per-session linearizability, isolation, counts — each returning a verdict with the
operations that witness it; *results* and *plots* read the checkers' verdicts and the history.
"""
