"""What comes back after the relay said 250: bounces, complaints and mailed unsubscribes.

    events     the policy: one event (from a message or a webhook) → the subscriber's new
               state and a `Bounce` row; `unsuppress`
    history    what `status`, `subscribers show` and `export` list
    mailboxes  where messages come from: one on stdin, a Maildir, an IMAP mailbox

Every message goes through `events.handle_message` (raw bytes in); what it is comes from
`digestd.mail.returned` (pure). May import: mail, subscribers, store and the base modules.
"""
