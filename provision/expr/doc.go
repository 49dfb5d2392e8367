// Package expr is GenieACS's expression language, the one preset
// preconditions and provision arguments are written in: SQL-like
// comparisons over device parameters, evaluated at the edge during a CWMP
// session.
//
//	InternetGatewayDevice.DeviceInfo.SoftwareVersion <> "1.2.3"
//	  AND DeviceID.ProductClass LIKE 'HG8%' AND Tags.beta IS NULL
//
// The grammar, loosest binding first: OR; AND; NOT; one comparison
// (= <> < <= > >=, IS [NOT] NULL, [NOT] LIKE pattern [ESCAPE c]; they do not
// chain); || (concatenation); + -; * / %; and the operands: numbers, 'SQL'
// and "JavaScript" strings, true, false, NULL, parameter paths, function
// calls (NOW, UPPER, LOWER, COALESCE, ROUND), CASE WHEN ... THEN ... [ELSE
// ...] END and parentheses. Keywords and function names are
// case-insensitive.
//
// A parameter path is GenieACS's lexical path: letters, digits, '_', '-',
// '.' and '*', starting with a letter or '_'. So "a-b" is one path, and
// "x*2" is refused (multiply with spaces: "x * 2"). '*' segments and
// "[Key:Value,...]" alias filters are allowed, and the caller resolves
// them (to the first matching parameter, as GenieACS does). edgeacs does
// not accept GenieACS's computed names ("Device.{expr}"), and it refuses
// what GenieACS would read oddly: empty path segments, numbers running into
// letters ("1.2.3": quote it), "!=" and "==".
//
// Evaluation follows SQL's three-valued logic as GenieACS does: a missing
// parameter is NULL, and NULL propagates through comparisons, arithmetic,
// || and functions; AND and OR ignore NULL only when another operand
// decides them. A precondition holds only when it evaluates to true (see
// Expr.Holds). Values compare in the richest form both sides share, so a
// numeric parameter compares as a number with 10 and with '10', and a
// dateTime as a time with '2024-01-01'. Where GenieACS would turn a
// non-numeric string into 0 in arithmetic, edgeacs yields NULL.
//
// Parse bounds what it accepts (MaxLen, MaxDepth, MaxNodes) and reports
// every problem as an *Error with a line and column, for a 400 answer at
// PUT time. Parsed expressions are immutable and safe for concurrent use.
package expr
