"""The neutral core: the contract, the algorithm, Philox, validation; imports no framework."""
