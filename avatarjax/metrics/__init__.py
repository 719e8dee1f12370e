"""Privacy and utility metrics of an avatar run, with the targets the report compares them to."""
