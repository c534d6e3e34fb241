//! Database URLs, in the forms CALISTA users already have, and their redaction.
