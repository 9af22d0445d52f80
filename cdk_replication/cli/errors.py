"""Exit codes of the ``cdk-replication`` command and the exceptions that map to them."""

from __future__ import annotations

#: Everything done; for ``verify``, no differences remain.
EXIT_OK = 0
#: The work ran but is not complete: differences remain, or some items could not be written.
EXIT_INCOMPLETE = 1
#: Bad input (unknown table, key schema mismatch, access denied, bad option): nothing was written.
EXIT_BAD_INPUT = 2
#: Interrupted by Ctrl-C / SIGINT; the state file (when the command has one) allows a resume.
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """A problem found before any write; the message says what is wrong and how to fix it (exit 2)."""


class WorkFailed(Exception):
    """A failure after work started (for example an export that AWS reports as FAILED) (exit 1)."""


# Error codes of a ClientError that say "the caller may not do this" rather than "try again".
ACCESS_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "MissingAuthenticationTokenException",
    }
)

# Error codes worth retrying with backoff: throttling and transient service errors.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ``ClientError``, or ``str(exc)``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc)


#: Appended to a credentials or table-not-found error when ``--endpoint-url`` is given: DynamoDB Local keeps
#: one database per access key, so the key decides which tables exist there.
LOCAL_CREDENTIALS_HINT = (
    "; against DynamoDB Local the access key selects the database: the local runtime's tables of account N "
    "are under AWS_ACCESS_KEY_ID=LOCAL<N> (e.g. LOCAL111111111111) with any secret key"
)
