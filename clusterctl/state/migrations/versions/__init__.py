"""One module per schema revision; `schema.HEAD_REVISION` names the newest."""
