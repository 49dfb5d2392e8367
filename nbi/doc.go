// Package nbi speaks GenieACS's northbound device vocabulary for both the
// edge and the core: it parses and evaluates the MongoDB-style queries that
// GenieACS scripts send as GET /devices?query=..., parses the projection=
// parameter, and renders a device in GenieACS's nested document shape.
//
// It knows nothing of storage or HTTP. Edge and core each adapt their own
// device view to the small Device and DocSource interfaces (or fill a
// Record), so the semantics live in one place and the two APIs cannot drift.
//
// Queries are evaluated in memory against one device at a time, not
// translated to an index, so the package bounds what it accepts (size,
// nesting, clause count, regex length): a query costs at most a few hundred
// comparisons per device. Query.IDs lets callers skip the scan when a query
// names its devices by _id, and Query.ParamPaths tells them which parameters
// a query reads (to refuse secret ones, or to skip loading parameters).
//
// Comparison follows what GenieACS users observe, not MongoDB's BSON type
// order: GenieACS stores typed values (numbers, dates, booleans) and expands
// each query string into its string, number and date forms, so a string
// "10" finds an xsd:unsignedInt 10. edgeacs keeps values as strings with
// their CWMP type and gets the same effect by comparing in the richest form
// both sides share: numbers, then dates, then booleans, else strings.
package nbi
