# The detection function: one static binary that speaks the Lambda runtime
# API itself (lambda_http), and the CA bundle its HTTPS calls to S3 check
# certificates against. Nothing is pulled: `controller apply` builds the
# binary and sends it, this file and the bundle as the build context.
# The same image serves plain HTTP with `serve --port 8080`.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY detection /detection
ENTRYPOINT ["/detection"]
