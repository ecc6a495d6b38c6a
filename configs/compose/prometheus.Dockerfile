# Prometheus and Alertmanager for the compose stack, from Debian's own packages
# (no registry image), with python3 for the stack's webhook receiver
# (alert-webhook.py). docker-compose.yml runs three services from this image
# and mounts configs/monitoring/ at /etc/catdog.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      prometheus prometheus-alertmanager python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /alertmanager && chown prometheus:prometheus /prometheus /alertmanager
COPY alert-webhook.py /usr/local/lib/catdog/alert-webhook.py
USER prometheus
EXPOSE 9090 9093 9095
VOLUME /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/catdog/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--web.listen-address=:9090", "--web.enable-lifecycle"]
