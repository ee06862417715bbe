"""The Arrow schema of claim lines in the national field names, as the tests write them."""
import pyarrow as pa

from claimaudit.dsl.schema import CLAIM_FIELDS

_ARROW = {"text": pa.string(), "number": pa.float64(), "date": pa.date32(), "datetime": pa.timestamp("s"),
          "list": pa.list_(pa.string())}
SCHEMA = pa.schema([(n, _ARROW[f.type]) for n, f in CLAIM_FIELDS.items()])
