package harness

import "fmt"

// FleetPackages are what amd64 systemd images add so that Ansible can
// drive a guest: sshd, and Python with the apt bindings its apt module
// needs. The image leaves sshd disabled; FleetFiles turns it on.
var FleetPackages = []string{"openssh-server", "python3", "python3-apt"}

// GuestAddr is the guest's address on QEMU's user-mode network, whose
// gateway is GuestGateway; Options.SSHPort forwards a host port to its
// port 22.
const (
	GuestAddr    = "10.0.2.15"
	GuestGateway = "10.0.2.2"
)

// FleetFiles are the files that make a systemd disk guest reachable over
// SSH: a static address on the user-mode network (systemd-networkd, no
// DHCP to wait for), sshd enabled, and root's authorized key.
func FleetFiles(authorizedKey []byte) []GuestFile {
	wants := "/etc/systemd/system/multi-user.target.wants/"
	return []GuestFile{
		{Path: "/etc/systemd/network/10-kxtest.network", Data: []byte(fmt.Sprintf("[Match]\nName=en* eth*\n\n[Network]\nAddress=%s/24\nGateway=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n", GuestAddr, GuestGateway))},
		{Path: wants + "systemd-networkd.service", Target: "/lib/systemd/system/systemd-networkd.service"},
		{Path: wants + "ssh.service", Target: "/lib/systemd/system/ssh.service"},
		{Path: "/root/.ssh", Dir: true, Mode: 0o700},
		{Path: "/root/.ssh/authorized_keys", Mode: 0o600, Data: authorizedKey},
	}
}
