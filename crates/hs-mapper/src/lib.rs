//! Map responses: pure functions from a NodeStore snapshot and a change to the smallest
//! correct `MapResponse` for each affected node, and the shared serialisation of peer
//! fragments across recipients.
