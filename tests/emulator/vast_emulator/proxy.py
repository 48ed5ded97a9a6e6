"""The SSH proxy endpoint (Vast's sshN.vast.ai:PORT): a TCP forwarder to the container's sshd.

Vast gives every instance a proxy port at creation that stays the same across stops and starts, while the
container's own port mapping changes on each start; so the forwarder asks for its target on every connection
and refuses (closes at once) while there is none.
"""

import socket
import threading


class TcpProxy:
    def __init__(self, target):
        """target(): the 127.0.0.1 port to forward to now, or None when nothing answers behind the proxy."""
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def close(self):
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        port = self._target()
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10) if port else None
        except OSError:
            upstream = None
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _pump(source, destination):
    """Copies bytes one way and passes the end of stream on; a broken side ends both directions."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            destination.sendall(data)
        destination.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, destination):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
