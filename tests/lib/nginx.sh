# The nginx of docs/examples/nginx.conf, as an operator would put it in front of statusd,
# rewritten to local ports and the test certificate, run unprivileged in "$tmp/nginx".
# Sourced by the stages that need it (tests/proxy, tests/bitlbee); uses their globals
# tmp, host, nginx_bin and pids, and check.sh's die and wait_port.
#
#   start_example_nginx STATUSD_PORT HTTPS_PORT HTTP_PORT

start_example_nginx() {
    local sport="$1" nport="$2" nhttp="$3"
    mkdir -p "$tmp/nginx"
    sed -e "s|server 127.0.0.1:3000;|server 127.0.0.1:$sport;|" \
        -e "s|listen 443 ssl http2;|listen 127.0.0.1:$nport ssl http2;|" \
        -e "s|listen 80;|listen 127.0.0.1:$nhttp;|" \
        -e "s|status.example.org|$host|g" \
        -e "s|/etc/ssl/certs/$host.pem|$tmp/cert.pem|; s|/etc/ssl/certs/status.example.org.pem|$tmp/cert.pem|" \
        -e "s|/etc/ssl/private/$host.key|$tmp/key.pem|; s|/etc/ssl/private/status.example.org.key|$tmp/key.pem|" \
        docs/examples/nginx.conf >"$tmp/nginx/statusd.conf"
    grep -q "$tmp/cert.pem" "$tmp/nginx/statusd.conf" || die "the nginx example's certificate path changed"
    cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/nginx/statusd.conf;
}
CONF
    "$nginx_bin" -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" || die "nginx rejects the example"
    "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
    pids+=($!)
    wait_port "$nport" 15 || die "nginx did not start: $(cat "$tmp/nginx/error.log")"
}
