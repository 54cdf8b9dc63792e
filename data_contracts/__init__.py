"""Great Expectations suites that data must satisfy before any training (imported as ``seqflow.data_contracts``).

Each module builds one suite from the run's configuration, so bounds follow the same settings that build the
vectoriser and the splits. Every expectation carries a comment naming what it guards against. The runner in
``seqflow.core.contracts`` validates real data against them and saves the results and Data Docs.
"""
