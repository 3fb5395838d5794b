from migrator.aws.session import AccountSession

from .conftest import SOURCE_ACCOUNT, TARGET_ACCOUNT


def test_sessions_land_in_their_own_accounts(source: AccountSession, target: AccountSession) -> None:
    assert source.caller_account() == SOURCE_ACCOUNT
    assert target.caller_account() == TARGET_ACCOUNT
