"""Opens an encrypted iPhone backup with iphone_backup_decrypt, the independent decryptor the interop tests
trust, and extracts files from it.

Usage: decrypt.py BACKUP_FOLDER OUT_FOLDER [DOMAIN RELATIVE_PATH]...
The password comes in the environment variable BACKUP_PASSWORD (never on the command line). Prints one JSON
object: the number of rows of the decrypted Manifest.db and, for each file asked for, where it was extracted.
Exit 3 when the password is wrong.
"""

import json
import os
import sys

from iphone_backup_decrypt import EncryptedBackup
from iphone_backup_decrypt.exceptions import IncorrectPassphraseError


def main():
    folder, out = sys.argv[1], sys.argv[2]
    pairs = sys.argv[3:]
    backup = EncryptedBackup(backup_directory=folder, passphrase=os.environ["BACKUP_PASSWORD"])
    try:
        backup.test_decryption()
    except IncorrectPassphraseError as e:
        print(f"wrong password: {e}", file=sys.stderr)
        sys.exit(3)
    with backup.manifest_db_cursor() as cursor:
        cursor.execute("SELECT count(*) FROM Files")
        rows = cursor.fetchone()[0]
    extracted = []
    for i in range(0, len(pairs), 2):
        domain, path = pairs[i], pairs[i + 1]
        target = os.path.join(out, f"{i // 2}")
        backup.extract_file(relative_path=path, domain_like=domain, output_filename=target)
        extracted.append(target)
    print(json.dumps({"rows": rows, "extracted": extracted}))


if __name__ == "__main__":
    main()
