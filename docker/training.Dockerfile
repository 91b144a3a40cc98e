# The training function: one static binary that speaks the Lambda runtime
# API itself (lambda_runtime), and the CA bundle its HTTPS calls (S3,
# Secrets Manager, Panther) check certificates against. Nothing is pulled:
# `controller apply` builds the binary and sends it, this file and the
# bundle as the build context.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY training /training
ENTRYPOINT ["/training"]
