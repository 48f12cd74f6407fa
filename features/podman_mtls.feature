@podman
Feature: Mutual TLS between the gateway and the supervisor in each Podman sandbox

  As an operator who runs AI agents in Podman sandboxes
  I want every sandbox supervisor to reach the gateway over mutually authenticated TLS
  So that no sandbox traffic crosses the network in clear and no stranger joins in

  Terms used below:
  - gateway: the OpenShell server that manages sandboxes through the Podman driver
  - supervisor: the process inside each sandbox that calls the gateway back over gRPC
  - guest TLS: the CA, client certificate and key the driver hands to each sandbox,
    set with the guest_tls_ca, guest_tls_cert and guest_tls_key keys
  - driver table: the [openshell.drivers.podman] table of the gateway's TOML
  - health port: the plaintext listener for liveness, apart from the gRPC port

  Background:
    Given a certificate authority that signed a gateway and a client certificate

  Rule: A supervisor reaches the gateway over mutual TLS

    @criterion.supervisor-connects
    Scenario: A sandbox supervisor connects to the gateway over mutual TLS
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then the supervisor connects over https
      And the SDK sees the sandbox ready over mTLS

    @criterion.peer-identity
    @only.with_target=reference
    Scenario: The gateway knows the supervisor by its client certificate
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then the gateway recorded the supervisor's client certificate subject:
        """
        CN=openshell-client,OU=openshell-user
        """

    @criterion.plaintext-contrast
    Scenario: Without TLS the supervisor connects in plaintext, and nothing TLS is mounted
      Given a Podman gateway without TLS
      When a sandbox starts
      Then the supervisor connects over plain http
      And the container has no TLS mounts and no OPENSHELL_TLS_* variables

  Rule: The certificates cover every name that is dialled, and keys stay private

    @criterion.server-names
    Scenario: The gateway certificate covers every name and address the supervisor or the CLI dials
      When the gateway certificate is read
      Then it names these DNS and IP subject alternative names:
        | kind | name                     |
        | DNS  | host.containers.internal |
        | DNS  | host.openshell.internal  |
        | DNS  | localhost                |
        | IP   | 127.0.0.1                |
        | IP   | ::1                      |
      And it is for server authentication, issued by the certificate authority

    @criterion.certificate-roles
    Scenario: The client certificate authenticates clients, the CA is a CA, and keys are owner-only
      When the client certificate and the certificate authority are read
      Then the client certificate is for client authentication, issued by the certificate authority
      And the certificate authority may sign certificates
      And every private key file is readable by its owner only

    @criterion.generate-certs
    Scenario: The gateway's own generator writes the same layout, owner-only
      When the gateway generates certificates into an empty directory
      Then the directory holds the CA, the server pair and the client pair
      And its directories and private keys are readable by their owner only
      And generating again into the same directory keeps the files as they are

  Rule: Guest TLS is on only when all three files are set, in either table, per key

    @criterion.guest-tls-placement
    Scenario Outline: Guest TLS set in <placement> gives a working mTLS gateway
      Given a Podman gateway with mTLS whose guest TLS is set in <placement>
      When a sandbox starts
      Then the supervisor connects over https

      Examples:
        | placement                   |
        | the gateway table           |
        | the driver table            |
        | both tables, split per key  |

    @criterion.partial-guest-tls
    Scenario Outline: A partial guest TLS configuration is refused (<set> in <placement>)
      Given a gateway configuration that sets only <set> in <placement>
      When the gateway starts
      Then it refuses to start, naming the missing <missing>
      And nothing listens on the gateway's ports
      And no sandbox container exists

      Examples: In the driver table
        | set                           | placement         | missing                       |
        | guest_tls_ca                  | the driver table  | guest_tls_cert, guest_tls_key |
        | guest_tls_cert                | the driver table  | guest_tls_ca, guest_tls_key   |
        | guest_tls_key                 | the driver table  | guest_tls_ca, guest_tls_cert  |
        | guest_tls_ca, guest_tls_cert  | the driver table  | guest_tls_key                 |
        | guest_tls_ca, guest_tls_key   | the driver table  | guest_tls_cert                |
        | guest_tls_cert, guest_tls_key | the driver table  | guest_tls_ca                  |

      Examples: In the gateway table, inherited by the driver
        | set                           | placement         | missing                       |
        | guest_tls_ca                  | the gateway table | guest_tls_cert, guest_tls_key |
        | guest_tls_cert                | the gateway table | guest_tls_ca, guest_tls_key   |
        | guest_tls_key                 | the gateway table | guest_tls_ca, guest_tls_cert  |
        | guest_tls_ca, guest_tls_cert  | the gateway table | guest_tls_key                 |
        | guest_tls_ca, guest_tls_key   | the gateway table | guest_tls_cert                |
        | guest_tls_cert, guest_tls_key | the gateway table | guest_tls_ca                  |

      Examples: Split across both tables
        | set                           | placement         | missing                       |
        | guest_tls_ca, guest_tls_cert  | both tables       | guest_tls_key                 |
        | guest_tls_ca, guest_tls_key   | both tables       | guest_tls_cert                |
        | guest_tls_cert, guest_tls_key | both tables       | guest_tls_ca                  |

    @criterion.contradictory-flags
    Scenario Outline: A contradictory command line is refused (<flags>)
      Given a gateway started with <flags>
      When the gateway starts
      Then it refuses to start, naming <named>
      And nothing listens on the gateway's ports

      Examples:
        | flags                                   | named                         |
        | --disable-tls and --tls-client-ca       | --disable-tls, --tls-client-ca |
        | --port equal to --health-port           | --health-port                 |

  Rule: The sandbox container carries the client material, and only as the driver says

    @criterion.container-spec
    Scenario: The sandbox container carries the client TLS material read-only
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then the container has these read-only bind mounts:
        | guest TLS file     | container path                    |
        | CA certificate     | /etc/openshell/tls/client/ca.crt  |
        | client certificate | /etc/openshell/tls/client/tls.crt |
        | client key         | /etc/openshell/tls/client/tls.key |
      And the container environment holds:
        | variable           | value                                           |
        | OPENSHELL_ENDPOINT | https://host.containers.internal:<gateway port> |
        | OPENSHELL_TLS_CA   | /etc/openshell/tls/client/ca.crt                |
        | OPENSHELL_TLS_CERT | /etc/openshell/tls/client/tls.crt               |
        | OPENSHELL_TLS_KEY  | /etc/openshell/tls/client/tls.key               |
      And the OPENSHELL_TLS_* variables hold paths, never certificate or key content
      And the container metadata holds no private key material

    @criterion.read-only-inside
    Scenario: The mounted TLS files cannot be changed from inside the sandbox
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then writing to each mounted TLS file from inside the sandbox fails as read-only

    @criterion.host-aliases
    Scenario: Both host aliases lead the sandbox to the gateway's TLS listener
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then from inside the sandbox, each host alias answers mutual TLS on the gateway port:
        | alias                    |
        | host.containers.internal |
        | host.openshell.internal  |

    @criterion.driver-environment-wins
    Scenario: A sandbox's own environment cannot redirect or weaken the supervisor
      Given a Podman gateway with mTLS
      When a sandbox starts with these environment variables of its own:
        | variable                          | value                        |
        | OPENSHELL_ENDPOINT                | http://attacker.invalid:1    |
        | OPENSHELL_TLS_CA                  | /tmp/other-ca.crt            |
        | OPENSHELL_TLS_CERT                | /tmp/other.crt               |
        | OPENSHELL_TLS_KEY                 | /tmp/other.key               |
        | OPENSHELL_SANDBOX_ID              | someone-else                 |
        | OPENSHELL_GATEWAY_TLS_SERVER_NAME | attacker.invalid             |
        | AGENT_SETTING                     | kept                         |
      Then the driver's values win for OPENSHELL_ENDPOINT, OPENSHELL_TLS_CA, OPENSHELL_TLS_CERT, OPENSHELL_TLS_KEY and OPENSHELL_SANDBOX_ID
      And the container has no OPENSHELL_GATEWAY_TLS_SERVER_NAME variable
      And the container environment holds:
        | variable      | value |
        | AGENT_SETTING | kept  |
      And the supervisor connects over https

  Rule: A supervisor that cannot verify its gateway never becomes ready, and says why

    @criterion.supervisor-verifies-gateway
    Scenario Outline: A gateway whose certificate <flaw> is not trusted by the supervisor
      Given a Podman gateway with mTLS whose server certificate <flaw>
      When a sandbox starts
      Then the sandbox does not become ready, and the reported cause is <cause>

      Examples:
        | flaw                         | cause                                    |
        | lacks the host alias         | a certificate name mismatch              |
        | was signed by another CA     | an unknown certificate issuer            |

    @criterion.loopback-only
    @only.with_target=reference
    Scenario: A gateway that listens only on loopback is reported as refusing the sandbox
      Given a Podman gateway with mTLS that listens on loopback only
      When a sandbox starts
      Then the sandbox does not become ready, and the reported cause is a refused connection to the host alias and port

  Rule: The driver uses the Podman socket it was given

    @criterion.explicit-socket
    Scenario: An explicitly configured Podman socket is the one the driver uses
      Given a Podman gateway with mTLS whose Podman socket is set explicitly
      When a sandbox starts
      Then the sandbox was created through the configured socket
      And the supervisor connects over https

  Rule: On the wire, sandbox traffic is TLS from its first byte
    The traffic between a sandbox and the gateway port is recorded on the
    sandbox network while the sandbox starts, and read back connection by
    connection: a supervisor that sent anything before its TLS handshake, or
    a gateway that answered in clear, shows up there.

    @criterion.wire-tls
    Scenario: Every connection from a sandbox to the gateway is TLS from its first byte
      Given a Podman gateway with mTLS
      When a sandbox starts while its traffic to the gateway is captured
      Then every connection opens with a TLS ClientHello naming host.containers.internal
      And the gateway answers every ClientHello with a ServerHello
      And every connection negotiates TLS 1.2 or newer
      And neither the HTTP/2 preface nor a gRPC method path crosses the wire in clear

    @criterion.wire-plaintext-contrast
    Scenario: Without TLS the same capture shows the HTTP/2 preface in clear
      Given a Podman gateway without TLS
      When a sandbox starts while its traffic to the gateway is captured
      Then the HTTP/2 preface crosses the wire in clear
      And the gRPC method path crosses the wire in clear

  Rule: The gateway's listener answers health in plaintext and everything else only over mutual TLS
    The health port is for probes and carries nothing secret. The gRPC port
    serves only callers that present a client certificate the gateway's CA
    signed and that is valid now; everyone else is refused during the TLS
    handshake, before a single request is served.

    @criterion.health-plaintext
    Scenario: Liveness and readiness answer in plaintext on the health port
      Given a Podman gateway with mTLS
      When liveness and readiness are probed in plaintext on the health port
      Then the health port answers:
        | probe     | status |
        | liveness  | 200    |
        | readiness | 200    |

    @criterion.no-plaintext
    Scenario: The gRPC port gives plaintext clients no answer
      Given a Podman gateway with mTLS
      When plaintext HTTP and plaintext gRPC clients call the gRPC port
      Then the gRPC port accepts their connections
      And the plaintext HTTP request gets no HTTP response
      And the plaintext gRPC call fails with status UNAVAILABLE

    @criterion.cli-registration
    Scenario: The official SDK reaches the gateway over mutual TLS through the CLI registration
      Given a Podman gateway with mTLS
      When the official SDK connects to the active gateway of the CLI registration
      Then the registration describes the gateway:
        | field            | value                            |
        | name             | <gateway name>                   |
        | gateway_endpoint | https://127.0.0.1:<gateway port> |
        | is_remote        | false                            |
        | gateway_port     | <gateway port>                   |
      And the registration holds the suite's CA certificate, client certificate and client key
      And the registration is the active gateway
      And the gateway answers the SDK's health check as healthy

    @criterion.untrusted-callers
    Scenario Outline: A caller the gateway does not trust is refused at the handshake (<caller>)
      Given a Podman gateway with mTLS
      When <caller> and the suite's own client each open a TLS session with the gateway
      Then the gateway ends the untrusted caller's session at the handshake, serving nothing
      And the gateway serves the suite's own client

      Examples:
        | caller                                             |
        | a caller without a client certificate              |
        | a caller whose certificate another CA signed       |
        | a caller whose client certificate has expired      |
        | a caller whose client certificate is not yet valid |

    @criterion.untrusted-callers
    @not.with_target=reference
    Scenario Outline: The gateway tells an untrusted caller why, in a TLS alert (<caller>)
      Given a Podman gateway with mTLS
      When <caller> and the suite's own client each open a TLS session with the gateway
      Then the gateway refuses the untrusted caller with a TLS alert
      And the gateway serves the suite's own client

      Examples:
        | caller                                             |
        | a caller without a client certificate              |
        | a caller whose certificate another CA signed       |
        | a caller whose client certificate has expired      |
        | a caller whose client certificate is not yet valid |

    @criterion.tls-session
    Scenario: A trusted client gets a verified, current TLS session that carries gRPC over HTTP/2
      Given a Podman gateway with mTLS
      When the suite's own client calls the gateway's health method as HTTP/2 over TLS
      Then the gateway's certificate chains to the suite's certificate authority
      And the session uses TLS 1.2 or newer
      And the health method answers healthy

  Rule: The gateway refuses bad input in one clear line

    @criterion.bad-input
    @only.with_target=reference
    Scenario Outline: A gateway whose <input> is <flaw> refuses to start, and says why in one line
      Given a gateway whose <input> is <flaw>
      When the gateway starts
      Then it exits with code 2 and one line that names <what> and says <why>
      And it left nothing behind: no port of its own answers and no sandbox container exists

      Examples:
        | input                 | flaw                                | what                                   | why                                |
        | configuration file    | not valid TOML                      | the configuration file                 | it is not valid TOML               |
        | driver table          | given a key no gateway knows        | the key and the configuration file     | the key is unknown                 |
        | configuration version | newer than the gateway knows        | the version and the configuration file | the version is newer than it knows |
        | certificate path      | a path where no file exists         | the certificate path                   | it does not exist                  |
        | key path              | a directory, not a file             | the key path                           | it cannot be read                  |
        | key                   | the client's key, not the gateway's | the key and the certificate            | they do not match                  |
        | certificate           | DER, not PEM                        | the certificate file                   | it is not PEM                      |
        | client CA             | a leaf certificate, not a CA        | the client CA file                     | it is not a CA                     |
        | certificate           | an empty file                       | the certificate file                   | it is empty                        |
        | gRPC port             | taken by another listener           | the port                               | it is already in use               |

  Rule: It holds under load and through restarts

    @criterion.many-sandboxes
    @only.with_target=reference
    Scenario: Eight sandboxes started at once all reach the gateway over mutual TLS, each in a session of its own
      Given a Podman gateway with mTLS
      When 8 sandboxes start at once
      Then every one of them becomes ready over mTLS within 60 seconds
      And each supervisor holds a session of its own, under the client certificate

    @criterion.gateway-restart
    @only.with_target=reference
    Scenario: Supervisors reconnect over mutual TLS when the gateway restarts on the same ports
      Given a Podman gateway with mTLS
      And 3 sandboxes whose supervisors are connected
      When the gateway is stopped with SIGTERM and started again on the same ports with the same configuration
      Then every supervisor reconnects over mTLS within 30 seconds
      And the gateway accepted a new session from each

    @criterion.supervisor-backoff
    @only.with_target=reference
    Scenario: A supervisor whose gateway is gone retries with growing intervals, then gives up at its bound
      Given a Podman gateway with mTLS
      And a sandbox whose supervisor is connected and gives up reconnecting after 4 seconds
      When the gateway stops for good
      Then the supervisor logs each retry, at intervals that grow
      And it stops retrying at its bound and exits, naming the cause in its last line

  Rule: On rootful and rootless Podman, the key stays the supervisor's and the gateway listens only where it must
    A lane is rootful or rootless Podman, as the Podman service reports it. With
    rootless Podman the sandbox's root is the host user who runs Podman, and the
    sandbox network lives in Podman's own network namespace, where the host
    cannot listen, so sandboxes reach the gateway on one of the host's own
    addresses instead. A scenario that only one lane can answer says so in its
    tags and is skipped, with the reason, on the other.

    @criterion.client-key-owner
    Scenario: Inside the sandbox the client key belongs to the supervisor's user, who alone may read it
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then inside the sandbox the client key is owned by 0:0 with mode 0600
      And the supervisor runs as the host user who owns the client key file, which only its owner may read
      And the supervisor connects over https

    @criterion.listen-addresses
    Scenario: The gateway listens on loopback and where its sandboxes reach the host, never on every address
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then the gateway port listens on loopback and on the address the host aliases name, and nowhere else

    @criterion.host-alias-address
    @only.with_lane=rootful
    Scenario: With rootful Podman the host aliases name the host side of the sandbox network
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then each host alias names the gateway address of the sandbox network, which this host holds:
        | alias                    |
        | host.containers.internal |
        | host.openshell.internal  |

    @criterion.host-alias-address
    @only.with_lane=rootless
    @only.with_target=reference
    Scenario: With rootless Podman the host aliases name an address of the host itself
      Given a Podman gateway with mTLS
      When a sandbox starts
      Then each host alias names an address this host holds, other than loopback:
        | alias                    |
        | host.containers.internal |
        | host.openshell.internal  |
      And no host alias names the gateway address of the sandbox network

    @criterion.remapped-ids
    @only.with_lane=rootless
    @only.with_target=reference
    Scenario: A supervisor whose user IDs are remapped cannot read an owner-only bind-mounted key, and says so
      Given a Podman gateway with mTLS
      When a sandbox whose user IDs are remapped starts
      Then the sandbox does not become ready, and the supervisor's one-line cause is that it cannot read the client key
      And the client key file on the host is readable by its owner only
