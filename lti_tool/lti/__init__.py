"""The LTI side of the tool: OIDC login and id_token launches (login.py, launch.py, claims.py,
routes.py), what a launch records (launches.py), role mapping (roles.py), the platforms'
registrations and keys (registrations.py, platform_keys.py), the tool's own keys (keys.py), and
the platforms' Assignment and Grade Services and Names and Role Provisioning Services
(platform_services.py), which attendance and grades use."""
