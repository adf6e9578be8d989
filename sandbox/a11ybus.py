"""A private accessibility (AT-SPI) bus for one sandbox.

Why one bus per sandbox: the apps publish their widgets (role, name, states,
text, screen box) over AT-SPI, a D-Bus protocol. On a normal desktop that is
one bus per login; here every sandbox is its own desktop, so each gets its own
``dbus-daemon`` of type ``accessibility``, run under bubblewrap like its apps
(same PID namespace rules, so it and the registry it activates die with the
sandbox, also when the owner is SIGKILLed). Its socket lives in the sandbox's
own folder (``a11y/``, mode 0700, owned by the apps' user), which is bound
into this sandbox's apps only: another sandbox's apps cannot see that folder,
and the host's session bus is never shown to any app. deskpilot itself (root
or the same user) connects to the socket from the host side to read the tree.

Apps find the bus through ``AT_SPI_BUS_ADDRESS`` (libatspi and atk-bridge
read it before anything else) or, for Qt 5, through the display's root
window property ``AT_SPI_BUS`` once connected to a session bus (the same bus
serves as the apps' session bus, see ``app_env``); the registry
(``at-spi2-registryd``) is started by the bus on the first app's request.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape

INSIDE_DIR = Path("/run/deskpilot/a11y")
SOCKET_NAME = "bus"
CONFIG_NAME = "bus.conf"
ROOT_PROPERTY = "AT_SPI_BUS"  # the X root window's property naming the bus (Qt 5 reads only this)
SERVICE_DIR = "/usr/share/dbus-1/accessibility-services"

# What turns each toolkit's accessibility bridge on (GTK3/4 publish by default once a bus is found).
BRIDGE_ENV = {
    "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1",  # Qt 5/6
    "QT_ACCESSIBILITY": "1",
    "GNOME_ACCESSIBILITY": "1",  # Firefox, Java ATK wrapper
    "GTK_A11Y": "atspi",  # GTK4's backend (GTK3 ignores it)
}


def daemon_path() -> str | None:
    """The dbus-daemon binary, or None when it (or the AT-SPI registry) is not installed."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None or not Path(SERVICE_DIR, "org.a11y.atspi.Registry.service").exists():
        return None
    return daemon


def config(socket: Path) -> str:
    """The bus's configuration: listen on ``socket`` only, activate the AT-SPI registry.

    A snapshot sends a whole tree level of requests before reading the replies:
    hence the raised limit on replies pending per connection (128 by default).
    ``allow user="root"`` lets deskpilot read the tree when it runs as root
    while the apps run as the unprivileged apps' user; who can reach the
    socket at all is decided by the folder it lives in.
    """
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>accessibility</type>
  <servicedir>{SERVICE_DIR}</servicedir>
  <auth>EXTERNAL</auth>
  <listen>unix:path={escape(str(socket))}</listen>
  <policy context="default">
    <allow user="root"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="service_start_timeout">20000</limit>
  <limit name="reply_timeout">30000</limit>
</busconfig>
"""


def address(socket: Path) -> str:
    return f"unix:path={socket}"


# LibreOffice publishes its widgets only through its GTK3 plugin (package libreoffice-gtk3)
LIBREOFFICE_GTK3 = Path("/usr/lib/libreoffice/program/libvclplug_gtk3lo.so")


def app_env(socket_inside: Path, *, office_gtk3: bool = False) -> dict[str, str]:
    """What an app needs to publish its widgets on this sandbox's bus.

    LibreOffice picks its GTK3 plugin by itself once ``libreoffice-gtk3`` is
    installed, which changes its look and its dialogs (titles, file chooser):
    workflows and cached runs recorded on its own X11 look would break. So it
    is pinned to that look (``gen``, no tree) unless ``office_gtk3`` asks for
    the GTK3 plugin, which publishes its widgets.

    The same bus is also the apps' session bus (``DBUS_SESSION_BUS_ADDRESS``):
    Qt 5's bridge reads neither ``AT_SPI_BUS_ADDRESS`` nor the root window's
    ``AT_SPI_BUS`` unless it is connected to a session bus first, so without
    one a Qt app publishes nothing. This bus activates only the AT-SPI
    registry, so asking it for any other service fails at once, and it is
    this sandbox's own: the host's session bus stays out of reach.
    """
    bus = address(socket_inside)
    return {"AT_SPI_BUS_ADDRESS": bus, "DBUS_SESSION_BUS_ADDRESS": bus, **BRIDGE_ENV, **office_env(office_gtk3)}


def office_env(office_gtk3: bool = False) -> dict[str, str]:
    """LibreOffice's VCL plugin: its own X11 look (``gen``) unless the GTK3 one is asked for and installed."""
    return {"SAL_USE_VCLPLUGIN": "gtk3" if office_gtk3 and LIBREOFFICE_GTK3.exists() else "gen"}
