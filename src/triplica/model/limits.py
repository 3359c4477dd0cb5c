"""Every DynamoDB limit triplica enforces, in one place, units in the names.

Values follow DynamoDB's documented service quotas ("Service, account, and
table quotas in Amazon DynamoDB").
"""

ITEM_SIZE_BYTES_MAX = 400 * 1024
PARTITION_KEY_BYTES_MAX = 2048
SORT_KEY_BYTES_MAX = 1024
NESTING_DEPTH_MAX = 32
NUMBER_DIGITS_MAX = 38
NUMBER_EXPONENT_MAX = 125      # largest magnitude < 1E+126
NUMBER_EXPONENT_MIN = -130     # smallest magnitude >= 1E-130
EXPRESSION_BYTES_MAX = 4096
ATTRIBUTE_NAME_BYTES_MAX = 65535
EXPRESSION_ATTRIBUTE_NAME_BYTES_MAX = 255
EXPRESSION_ATTRIBUTE_VALUES_BYTES_MAX = 80 * 1024
EXPRESSION_OPERATORS_MAX = 300  # AND OR NOT IN BETWEEN comparators (+ - and functions in updates)
EXPRESSION_IN_OPERANDS_MAX = 100
LIST_INDEX_MAX = 2**31 - 1     # a list index in a document path is a Java int
TABLE_NAME_LENGTH_MIN = 3
TABLE_NAME_LENGTH_MAX = 255
QUERY_PAGE_BYTES_MAX = 1024 * 1024
BATCH_GET_KEYS_MAX = 100
BATCH_GET_RESPONSE_BYTES_MAX = 16 * 1024 * 1024
BATCH_WRITE_REQUESTS_MAX = 25
REQUEST_BODY_BYTES_MAX = 16 * 1024 * 1024
LIST_TABLES_LIMIT_MAX = 100
TAGS_PER_RESOURCE_MAX = 50
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
TABLES_PER_ACCOUNT_MAX = 2500
SCAN_TOTAL_SEGMENTS_MAX = 1000000
REQUEST_LIMIT_MAX = 2**31 - 1  # Query/Scan Limit is a Java int
# An item collection (one partition key value's items and their local secondary index
# entries) stops growing at this size (engine/operations/index_writes.py).
ITEM_COLLECTION_BYTES_MAX = 10 * 1024**3
